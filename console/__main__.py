"""`python -m homeport.console`: the console alone, without importing every other
command's packages first (faster to start than `homeport console`; same command)."""

from homeport.console.cli import console

console()
