from photodedup.cli import main

if __name__ == "__main__":  # worker processes import this module without running the CLI
    main()
