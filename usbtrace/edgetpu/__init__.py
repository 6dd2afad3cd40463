"""Edge TPU protocol: logical transfers, events, outputs, CSR access and firmware download."""
