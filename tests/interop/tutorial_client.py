# The tutorial's client (shared/seed/sockets-tutorial.md), changed only so that the host and
# port come from the command line: tutorial_client.py HOST PORT
import socket
import sys


def run_client():
    """
    Connects to a server, sends a message, and prints the response.
    """
    # Create a socket object
    client_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    # Get the local machine name and the port number
    host = sys.argv[1]
    port = int(sys.argv[2])

    try:
        # Connect to the server
        client_socket.connect((host, port))
        print(f"Successfully connected to {host}:{port}")

        # Send a message to the server
        message = "Hello from the client!"
        client_socket.send(message.encode("utf-8"))

        # Receive the response from the server
        response = client_socket.recv(1024).decode("utf-8")
        print(f"Received response from server: {response}")

    except ConnectionRefusedError:
        print("Connection failed. Make sure the server script is running first.")
    except Exception as e:
        print(f"An error occurred: {e}")
    finally:
        # Close the socket
        client_socket.close()
        print("Client socket closed.")


run_client()
