// NcclPipe between two threads of this process, rank 0 on cuda:0 and rank 1
// on cuda:1 (NCCL refuses two ranks of a communicator on one device).
#include "link/cuda/nccl_pipe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/cuda/device_info.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ReceiveResult = NcclPipe::ReceiveResult;

// Long enough for a slow machine; a hang still ends the test.
Clock::time_point Deadline() { return Clock::now() + seconds(30); }

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 engine(seed);
  std::string bytes(size, '\0');
  for (char& byte : bytes) byte = static_cast<char>(engine());
  return bytes;
}

// Compares messages by size and first differing byte, not by printing
// megabytes.
::testing::AssertionResult SameBytes(const std::string& want,
                                     const std::string& got) {
  if (want.size() != got.size()) {
    return ::testing::AssertionFailure()
           << got.size() << " bytes, want " << want.size();
  }
  const auto difference = std::mismatch(want.begin(), want.end(), got.begin());
  if (difference.first != want.end()) {
    return ::testing::AssertionFailure()
           << "first difference at byte " << (difference.first - want.begin());
  }
  return ::testing::AssertionSuccess();
}

TEST(NcclPipeOptionsTest, ConnectRejectsBadOptions) {
  const std::string id_a(NCCL_UNIQUE_ID_BYTES, 'a');
  const std::string id_b(NCCL_UNIQUE_ID_BYTES, 'b');
  NcclPipe::Options options;
  options.send_id = id_a;
  options.receive_id = id_b;
  std::string error;

  options.rank = 2;
  EXPECT_TRUE(NcclPipe::Connect(options, &error) == nullptr);
  EXPECT_NE(error.find("rank"), std::string::npos) << error;

  options.rank = 0;
  options.receive_id = "short";
  error.clear();
  EXPECT_TRUE(NcclPipe::Connect(options, &error) == nullptr);
  EXPECT_NE(error.find("bytes"), std::string::npos) << error;

  options.receive_id = id_a;
  error.clear();
  EXPECT_TRUE(NcclPipe::Connect(options, &error) == nullptr);
  EXPECT_NE(error.find("different"), std::string::npos) << error;
}

TEST(NcclPipeOneGpuTest, NewNcclUniqueIdGivesDistinctIds) {
  MOE_SKIP_WITHOUT_GPU();
  std::string first, second, error;
  ASSERT_TRUE(NewNcclUniqueId(&first, &error)) << error;
  ASSERT_TRUE(NewNcclUniqueId(&second, &error)) << error;
  EXPECT_EQ(first.size(), size_t{NCCL_UNIQUE_ID_BYTES});
  EXPECT_EQ(second.size(), size_t{NCCL_UNIQUE_ID_BYTES});
  EXPECT_NE(first, second);
}

TEST(NcclPipeOneGpuTest, ConnectGivesUpWhenThePeerNeverJoins) {
  MOE_SKIP_WITHOUT_GPU();
  NcclPipe::Options options;
  std::string error;
  ASSERT_TRUE(NewNcclUniqueId(&options.send_id, &error)) << error;
  ASSERT_TRUE(NewNcclUniqueId(&options.receive_id, &error)) << error;
  options.connect_timeout = milliseconds(500);

  const Clock::time_point start = Clock::now();
  const std::unique_ptr<NcclPipe> pipe = NcclPipe::Connect(options, &error);
  const Clock::duration took = Clock::now() - start;
  EXPECT_TRUE(pipe == nullptr);
  EXPECT_NE(error.find("timed out"), std::string::npos) << error;
  EXPECT_GE(took, milliseconds(500));
  EXPECT_LT(took, seconds(5));
}

// Told the peer will not come (its answer failed), Connect stops at once
// instead of at its timeout.
TEST(NcclPipeOneGpuTest, ConnectStopsWhenAbandoned) {
  MOE_SKIP_WITHOUT_GPU();
  NcclPipe::Options options;
  std::string error;
  ASSERT_TRUE(NewNcclUniqueId(&options.send_id, &error)) << error;
  ASSERT_TRUE(NewNcclUniqueId(&options.receive_id, &error)) << error;
  options.connect_timeout = seconds(60);

  const Clock::time_point start = Clock::now();
  const std::unique_ptr<NcclPipe> pipe = NcclPipe::Connect(
      options, &error,
      [start] { return Clock::now() - start > milliseconds(300); });
  const Clock::duration took = Clock::now() - start;
  EXPECT_TRUE(pipe == nullptr);
  EXPECT_NE(error.find("gave up"), std::string::npos) << error;
  EXPECT_GE(took, milliseconds(300));
  EXPECT_LT(took, seconds(20));
}

// Both sides of a pipe, connected concurrently as two processes would.
class NcclPipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MOE_SKIP_WITHOUT_GPU();
    if (cuda::DeviceCount() < 2) {
      GTEST_SKIP() << "needs two GPUs: NCCL refuses two ranks on one device";
    }
    std::string ids[2], error;
    for (std::string& id : ids)
      ASSERT_TRUE(NewNcclUniqueId(&id, &error)) << error;
    std::string errors[2];
    auto connect = [&](int rank) {
      NcclPipe::Options options;
      options.device = rank;
      options.rank = rank;
      options.send_id = ids[rank];
      options.receive_id = ids[1 - rank];
      options.connect_timeout = seconds(30);
      pipes_[rank] = NcclPipe::Connect(options, &errors[rank]);
    };
    std::thread side1(connect, 1);
    connect(0);
    side1.join();
    ASSERT_TRUE(pipes_[0] != nullptr) << errors[0];
    ASSERT_TRUE(pipes_[1] != nullptr) << errors[1];
  }

  void TearDown() override {
    // Both sides abort at once, as NCCL wants of the ranks of one node.
    std::thread side1([this] { pipes_[1].reset(); });
    pipes_[0].reset();
    side1.join();
  }

  std::unique_ptr<NcclPipe> pipes_[2];
};

TEST_F(NcclPipeTest, PayloadsArriveIntactAndInOrder) {
  const std::vector<size_t> sizes = {0, 1, 4097, size_t{64} << 20};
  // Both directions at once: each side sends from a thread of its own while
  // this thread receives what the other side sent.
  std::vector<std::string> messages[2];
  for (int side = 0; side < 2; ++side) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      messages[side].push_back(
          RandomBytes(sizes[i], static_cast<uint32_t>(100 * side + i)));
    }
  }
  bool sent[2] = {true, true};
  std::string send_errors[2];
  std::thread senders[2];
  for (int side = 0; side < 2; ++side) {
    senders[side] = std::thread([&, side] {
      for (const std::string& message : messages[side]) {
        if (!pipes_[side]->Send(message.data(), message.size(),
                                &send_errors[side])) {
          sent[side] = false;
          return;
        }
      }
    });
  }
  std::vector<std::string> received[2];  // by sending side
  for (int side = 0; side < 2; ++side) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::string message, error;
      const ReceiveResult result =
          pipes_[1 - side]->Receive(sizes[i], &message, Deadline(), &error);
      EXPECT_TRUE(result == ReceiveResult::kOk)
          << "message " << i << " from side " << side << ": " << error;
      if (result != ReceiveResult::kOk) break;
      received[side].push_back(std::move(message));
    }
  }
  for (std::thread& sender : senders) sender.join();

  for (int side = 0; side < 2; ++side) {
    EXPECT_TRUE(sent[side]) << "side " << side << ": " << send_errors[side];
    ASSERT_EQ(received[side].size(), sizes.size()) << "from side " << side;
    for (size_t i = 0; i < sizes.size(); ++i) {
      EXPECT_TRUE(SameBytes(messages[side][i], received[side][i]))
          << "message " << i << " (" << sizes[i] << " bytes) from side "
          << side;
    }
  }
}

TEST_F(NcclPipeTest, EchoesHundredPayloadsInOrder) {
  constexpr int kCount = 100;
  std::vector<std::string> messages;
  for (int i = 0; i < kCount; ++i) {
    messages.push_back(RandomBytes(1 + (i * 97) % 2000, 1000 + i));
  }
  // Side 1 sends each message back as it arrives, so messages go both ways
  // at once while side 0 is still sending.
  bool echoed = true;
  std::string echo_error;
  std::thread echo([&] {
    for (int i = 0; i < kCount; ++i) {
      std::string message;
      if (pipes_[1]->Receive(messages[i].size(), &message, Deadline(),
                             &echo_error) != ReceiveResult::kOk ||
          !pipes_[1]->Send(message.data(), message.size(), &echo_error)) {
        echoed = false;
        return;
      }
    }
  });
  bool sent = true;
  std::string send_error;
  std::thread sender([&] {
    for (const std::string& message : messages) {
      if (!pipes_[0]->Send(message.data(), message.size(), &send_error)) {
        sent = false;
        return;
      }
    }
  });
  std::vector<std::string> echoes;
  for (int i = 0; i < kCount; ++i) {
    std::string message, error;
    const ReceiveResult result =
        pipes_[0]->Receive(messages[i].size(), &message, Deadline(), &error);
    EXPECT_TRUE(result == ReceiveResult::kOk) << "echo " << i << ": " << error;
    if (result != ReceiveResult::kOk) break;
    echoes.push_back(std::move(message));
  }
  sender.join();
  echo.join();

  EXPECT_TRUE(sent) << send_error;
  EXPECT_TRUE(echoed) << echo_error;
  ASSERT_EQ(echoes.size(), size_t{kCount});
  for (int i = 0; i < kCount; ++i) {
    EXPECT_TRUE(SameBytes(messages[i], echoes[i])) << "echo " << i;
  }
}

TEST_F(NcclPipeTest, ReceiveTimesOutAndBreaksThePipe) {
  std::string message, error;
  const Clock::time_point start = Clock::now();
  const ReceiveResult result =
      pipes_[0]->Receive(8, &message, start + milliseconds(200), &error);
  const Clock::duration took = Clock::now() - start;
  EXPECT_TRUE(result == ReceiveResult::kTimeout) << error;
  EXPECT_GE(took, milliseconds(200));
  EXPECT_LT(took, seconds(10));
  EXPECT_TRUE(pipes_[0]->broken());

  error.clear();
  EXPECT_FALSE(pipes_[0]->Send("x", 1, &error));
  EXPECT_FALSE(error.empty());
  EXPECT_TRUE(pipes_[0]->Receive(8, &message, Deadline(), &error) ==
              ReceiveResult::kBroken);
  // NCCL tells the peer nothing of an abort; its owner closes it.
  pipes_[1]->Abort();
}

TEST_F(NcclPipeTest, AbortFromAnotherThreadUnblocksReceive) {
  std::atomic<bool> receiving{false};
  ReceiveResult result = ReceiveResult::kOk;
  std::string error;
  Clock::duration took{};
  std::thread receiver([&] {
    std::string message;
    const Clock::time_point start = Clock::now();
    receiving = true;
    result = pipes_[0]->Receive(8, &message, start + seconds(60), &error);
    took = Clock::now() - start;
  });
  while (!receiving) std::this_thread::yield();
  std::this_thread::sleep_for(milliseconds(200));
  pipes_[0]->Abort();
  receiver.join();

  EXPECT_TRUE(result == ReceiveResult::kBroken) << error;
  // It was blocked until the abort, and the abort, not the deadline, ended it.
  EXPECT_GE(took, milliseconds(200));
  EXPECT_LT(took, seconds(30));
  EXPECT_TRUE(pipes_[0]->broken());
  pipes_[1]->Abort();
}

}  // namespace
}  // namespace moe
