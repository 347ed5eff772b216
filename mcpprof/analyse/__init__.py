"""Pure analyses over profiles: ``Profile -> Profile`` or ``Profile -> summary``."""
