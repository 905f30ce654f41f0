"""The web app for the people the exchange serves, served by the gateway under `/`."""
