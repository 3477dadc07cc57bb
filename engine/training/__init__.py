"""Training in the database (placeholder docstring, completed below)."""
