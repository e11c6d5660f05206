"""End-to-end tests against a whole local mesh (localmesh), started once per session."""
