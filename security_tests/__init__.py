"""Security harness: breach and access-abuse scenarios runnable against any registry URL."""
