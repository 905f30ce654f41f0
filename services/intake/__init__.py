"""Intake services: one faust app per kind of posting, the only writer of its event topic."""
