"""File formats: pcap and pcapng, read in streamed numpy batches, and a small pcapng writer."""
