"""Allow `python -m sitewire`."""

from sitewire.cli.main import main

main()
