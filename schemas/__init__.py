"""The event contract of Community Exchange: every message on every topic is one of these models.

Other clients read our topics without our code; this package (and the JSON Schema files it exports)
is the part of the product that must outlive everything else, so it changes only by versioned,
upcastable steps.
"""
