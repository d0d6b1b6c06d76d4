"""The `pain3d` command: a thin layer above the packages. Each verb parses its flags and calls one library function
of the package it is about (generate and clips in `generation`; audit, verify, export and evaluate on the data side),
then finalises what the layer below leaves to it (the card of a generated folder)."""
