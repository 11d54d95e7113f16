"""clientdedupe in a few lines: equal configurations give one shared client.

    python examples/quickstart.py [BASE_URL]

Nothing is sent: building a client opens no connection.
"""

import sys

import openai

import clientdedupe

clientdedupe.install()  # before or after `import openai`: both work

base_url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/v1"
a = openai.OpenAI(api_key="sk-example", base_url=base_url)
b = openai.OpenAI(api_key="sk-example", base_url=base_url)
c = openai.OpenAI(api_key="sk-another-key", base_url=base_url)
print("a is b:", a is b)  # True: same configuration, one client, one connection pool
print("a is c:", a is c)  # False: another API key is another client
print(clientdedupe.stats()["openai.OpenAI"])
