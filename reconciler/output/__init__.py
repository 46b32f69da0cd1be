"""The one place text leaves the program: every format, the terminal, summaries, the HTML report."""
