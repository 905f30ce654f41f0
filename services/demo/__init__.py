"""The Nanjing demo scenario: data in scenario.json, posted through the public HTTP API."""
