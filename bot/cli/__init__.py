"""The `byline` command line (`bot.cli.main`). Settings are built here, at the edge, and passed down."""
