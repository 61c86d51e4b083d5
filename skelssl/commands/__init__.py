"""What each `skelssl` command does, one module per group; skelssl.cli parses the command line and loads only the
module of the command it runs (`skelssl info` and `skelssl prepare` never import Lightning)."""
