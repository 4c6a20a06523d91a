"""asv benchmarks of numbarl against its peers."""
