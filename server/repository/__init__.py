"""The repository layer: every SQL statement the server runs lives in this package."""
