"""The FastAPI facade: the documented REST endpoints."""
