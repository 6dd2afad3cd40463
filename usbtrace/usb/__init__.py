"""USB model: usbmon records, submit/complete pairing into URBs, control setup and descriptors."""
