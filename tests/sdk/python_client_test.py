#!/usr/bin/env python3
"""moe_client.Client's retries, errors and cancellation against an
in-process moe.v1.Inference server on 127.0.0.1 whose failures each test
chooses. (sdk_python_test.py checks the client against the real gateway.)
"""

import threading
import time
import unittest
from concurrent import futures

import grpc
from moe_client import Client, MoeError
from moe_client._proto import finish_reason_pb2, inference_pb2, inference_pb2_grpc


class FakeInference(inference_pb2_grpc.InferenceServicer):
    def __init__(self):
        self.unavailable_calls = 0  # the first calls fail so
        self.fail_after_first_chunk = False
        self.chunk_delay = 0.0  # seconds
        self.calls = 0
        self.cancelled = threading.Event()

    def Generate(self, request, context):
        self.calls += 1
        if self.calls <= self.unavailable_calls:
            context.abort(grpc.StatusCode.UNAVAILABLE, "no router")
        context.add_callback(self.cancelled.set)  # when the call ends
        for i in range(request.max_tokens):
            time.sleep(self.chunk_delay)
            yield inference_pb2.GenerateResponse(
                request_id="req-1", text=f"t{i} ", token_ids=[i])
            if self.fail_after_first_chunk:
                context.abort(grpc.StatusCode.UNAVAILABLE, "expert worker w0 failed")
        yield inference_pb2.GenerateResponse(
            request_id="req-1", finish_reason=finish_reason_pb2.FINISH_REASON_EOS,
            usage=inference_pb2.Usage(prompt_tokens=3,
                                      completion_tokens=request.max_tokens))

    def GetModelInfo(self, request, context):
        self.calls += 1
        if self.calls <= self.unavailable_calls:
            context.abort(grpc.StatusCode.UNAVAILABLE, "no router")
        return inference_pb2.ModelInfo(name="fake", bos_token_id=-1,
                                       eos_token_ids=[2])

    def Tokenize(self, request, context):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text: must not be empty")


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeInference()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        inference_pb2_grpc.add_InferenceServicer_to_server(self.fake, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.client = Client(f"127.0.0.1:{port}", timeout=10, max_retries=3)

    def tearDown(self):
        self.client.close()
        self.server.stop(grace=None)

    def test_streams_chunks_then_the_finish_reason_and_usage(self):
        completion = self.client.generate("hi", max_tokens=3)
        self.assertEqual(list(completion), ["t0 ", "t1 ", "t2 "])
        self.assertEqual(completion.text, "t0 t1 t2 ")
        self.assertEqual(completion.token_ids, [0, 1, 2])
        self.assertEqual(completion.finish_reason, "eos")
        self.assertEqual((completion.usage.prompt_tokens,
                          completion.usage.completion_tokens), (3, 3))
        self.assertEqual(completion.request_id, "req-1")

    def test_retries_unavailable_before_the_first_token(self):
        self.fake.unavailable_calls = 2
        self.assertEqual(self.client.generate_text("hi", max_tokens=2).text, "t0 t1 ")
        self.assertEqual(self.fake.calls, 3)

    def test_never_retries_after_a_token_was_received(self):
        self.fake.fail_after_first_chunk = True
        chunks = []
        with self.assertRaises(MoeError) as raised:
            for chunk in self.client.generate("hi", max_tokens=5):
                chunks.append(chunk)
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(raised.exception.message, "expert worker w0 failed")
        self.assertEqual(chunks, ["t0 "])
        self.assertEqual(self.fake.calls, 1)

    def test_unary_calls_retry_and_errors_carry_code_and_message(self):
        self.fake.unavailable_calls = 1
        info = self.client.model_info()
        self.assertEqual((info.name, info.bos_token_id, info.eos_token_ids),
                         ("fake", None, (2,)))
        self.assertEqual(self.fake.calls, 2)
        with self.assertRaises(MoeError) as raised:
            self.client.tokenize("")
        self.assertEqual(raised.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(str(raised.exception),
                         "INVALID_ARGUMENT: text: must not be empty")

    def test_leaving_the_loop_cancels_the_generation(self):
        self.fake.chunk_delay = 0.01  # the stream would last 1000 s
        completion = self.client.generate("hi", max_tokens=100000)
        for _ in completion:
            break
        self.assertTrue(self.fake.cancelled.wait(timeout=5))
        self.assertIsNone(completion.finish_reason)


if __name__ == "__main__":
    unittest.main()
