"""Environment transforms."""
