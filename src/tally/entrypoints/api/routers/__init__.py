"""The back-office API's routes, one module per router; ``app.create_api`` includes each."""
