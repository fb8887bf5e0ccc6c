"""One module per `koala <verb>`: absl flags + main(argv)."""
