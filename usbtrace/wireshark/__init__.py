"""The Wireshark side of usbtrace: a Lua dissector generated from the protocol constants."""
