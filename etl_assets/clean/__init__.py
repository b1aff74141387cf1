"""The clean stage: typing (`coerce`), the field rules (`rules/`), and their assets."""
