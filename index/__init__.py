"""The index floor: ports (ChunkIndex, Embedder) and their implementations."""
