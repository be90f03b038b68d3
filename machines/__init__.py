"""Machines and workers: the registry the dispatcher matches jobs against."""
