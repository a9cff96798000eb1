"""Services: the one place surfaces call to read and write the store."""
