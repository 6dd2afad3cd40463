"""File formats: pcap and pcapng read in streamed numpy batches, the usbmon record header, and a
small pcapng writer."""
