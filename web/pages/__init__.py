"""Server-rendered admin pages: each module adds its routes and navigation entry in one ``setup_*``."""
