"""Domain logic. No Flask imports here: every function takes a Session/Connection/Engine."""
