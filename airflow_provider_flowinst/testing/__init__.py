"""Tools for testing DAGs that use this provider: the local platform emulator."""
