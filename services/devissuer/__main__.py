from services.devissuer.server import main

main()
