"""Clusters: a fixed number of partitions of hunts, hosted by nodes (see `config`)."""
