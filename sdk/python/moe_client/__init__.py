"""Python client of the moe-serve public API (moe.v1.Inference).

    from moe_client import Client

    with Client("127.0.0.1:50051") as client:
        completion = client.generate("The licensee may", max_tokens=32)
        for chunk in completion:
            print(chunk, end="", flush=True)
        print(completion.finish_reason, completion.usage)
"""

from moe_client.client import Client, Completion, ModelInfo, MoeError, Usage

__all__ = ["Client", "Completion", "ModelInfo", "MoeError", "Usage"]
