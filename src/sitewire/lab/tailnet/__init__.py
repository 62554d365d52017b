"""The lab's Tailscale stand-in: prefs, a shared control file, and what tailscaled installs."""
