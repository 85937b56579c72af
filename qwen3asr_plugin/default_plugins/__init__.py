"""Built-in plugins: registered like any other, marked trylast so installed plugins come first."""
