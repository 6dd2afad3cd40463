"""USB model: submit/complete pairing into URBs, control setup packets and descriptors."""
