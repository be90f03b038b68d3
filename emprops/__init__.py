"""The EmProps platform client (built by the EmProps issue)."""
