"""Tables, figures and HTML/Markdown documents."""
