from ablab.cli.main import entry

entry()
