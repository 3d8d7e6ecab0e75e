"""Routes, one module per audience."""
