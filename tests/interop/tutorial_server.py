# The tutorial's server (shared/seed/sockets-tutorial.md), changed only so that the host and
# port come from the command line: tutorial_server.py HOST PORT
import socket
import sys


def run_server():
    """
    Sets up and runs a basic TCP server.
    """
    # Create a socket object
    # AF_INET is the address family for IPv4
    # SOCK_STREAM is the socket type for TCP
    server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    # Get the local machine name and a port number
    host = sys.argv[1]
    port = int(sys.argv[2])

    # Bind the socket to the host and port
    server_socket.bind((host, port))

    # Listen for incoming connections
    # The argument 5 specifies the number of unaccepted connections that the system will allow before refusing new connections.
    server_socket.listen(5)
    print(f"Server is listening on {host}:{port}")

    # The server runs indefinitely to accept new connections.
    while True:
        # Accept a connection from a client
        client_socket, addr = server_socket.accept()
        print(f"Got a connection from {addr}")

        # Receive data from the client
        # The argument 1024 is the maximum amount of data to be received at once.
        message = client_socket.recv(1024).decode('utf-8')
        print(f"Received message from client: {message}")

        # Send a response back to the client
        response = "Hello from the server!"
        client_socket.send(response.encode('utf-8'))

        # Close the connection with the client
        client_socket.close()
        print(f"Connection with {addr} closed.")


run_server()
