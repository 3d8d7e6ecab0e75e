"""The leaf of the code base: the domain error tree and shared records. Imports nothing of ours."""
