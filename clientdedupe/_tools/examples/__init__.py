"""The example programs ``clientdedupe demo`` runs."""
