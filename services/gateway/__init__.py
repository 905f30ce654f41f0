"""The HTTP gateway: validates postings, makes them durable, publishes them, serves read models."""
