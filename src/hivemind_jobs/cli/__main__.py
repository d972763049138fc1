from hivemind_jobs.cli.main import main

main()
