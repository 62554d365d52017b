"""`sitewire adopt`: a spec and a lock from a network someone made by hand."""
