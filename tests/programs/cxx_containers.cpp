// cxx_containers.cpp: a C++17 program exercising std::map, std::vector,
// std::string and std::unordered_map from 4 threads, handing containers
// between threads so they are destroyed by a thread other than the one that
// filled them. Prints deterministic results (checked plain vs preloaded).
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

constexpr int kThreads = 4;
constexpr int kItems = 60000;
constexpr int kRounds = 3;

std::uint64_t fnv1a(const std::string &s, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

struct Result {
  std::uint64_t hash = 0;
  std::size_t map_size = 0;
  std::size_t umap_size = 0;
  std::size_t chars = 0;
};

// Built by one thread, destroyed by the next one round-robin.
std::mutex handoff_lock;
std::vector<std::unique_ptr<std::vector<std::string>>> handoff(kThreads);

Result work(int id, int round) {
  Result r;
  std::map<std::string, int> ordered;
  std::unordered_map<int, std::string> hashed;
  auto strings = std::make_unique<std::vector<std::string>>();
  for (int i = 0; i < kItems; i++) {
    std::string key = "t" + std::to_string(id) + "-" + std::to_string((i * 7919 + round) % kItems);
    key.append(static_cast<std::size_t>(i % 41), static_cast<char>('a' + i % 26));
    ordered[key] += i;
    hashed.emplace(i, key + key);
    strings->push_back(std::move(key));
    if (i % 3 == 0) hashed.erase(i / 2);
  }
  for (const auto &kv : ordered) r.hash = fnv1a(kv.first, r.hash) ^ static_cast<std::uint64_t>(kv.second);
  for (int i = 0; i < kItems; i += 97) {
    auto it = hashed.find(i);
    if (it != hashed.end()) r.hash = fnv1a(it->second, r.hash);
  }
  r.map_size = ordered.size();
  r.umap_size = hashed.size();
  for (const auto &s : *strings) r.chars += s.size();
  {
    // Swap our vector in; destroy whatever the previous thread left.
    std::lock_guard<std::mutex> g(handoff_lock);
    handoff[static_cast<std::size_t>((id + 1) % kThreads)].swap(strings);
  }
  return r; // `strings` (another thread's vector, or null) dies here
}

} // namespace

int main() {
  for (int round = 0; round < kRounds; round++) {
    std::vector<Result> results(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++)
      threads.emplace_back([&results, t, round] { results[static_cast<std::size_t>(t)] = work(t, round); });
    for (auto &th : threads) th.join();
    for (int t = 0; t < kThreads; t++) {
      const Result &r = results[static_cast<std::size_t>(t)];
      std::printf("round %d thread %d: map %zu umap %zu chars %zu hash %016llx\n", round, t, r.map_size, r.umap_size,
                  r.chars, static_cast<unsigned long long>(r.hash));
    }
  }
  std::size_t left = 0;
  for (auto &v : handoff) left += v ? v->size() : 0;
  std::printf("left in hand-off: %zu strings\n", left);
  return 0;
}
