"""Server-rendered admin pages: each module adds its routes and nav entry in one ``setup_*``."""
