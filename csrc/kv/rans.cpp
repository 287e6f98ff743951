// Static rANS over small alphabets (rans.h).
#include "kv/rans.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace ragkernels::kv::rans {

namespace {

constexpr uint32_t kTotal = 1u << kProbBits;
constexpr uint32_t kLow = 1u << 23;  // the state stays in [kLow, kLow << 8) between symbols

int contexts_of(int alphabet_bits, int order) { return order == 1 ? 1 << alphabet_bits : 1; }

uint8_t context_at(const uint8_t* symbols, int64_t i, int64_t cols, int order) {
  return order == 1 && i >= cols ? symbols[i - cols] : 0;
}

// Counts scaled to sum to kTotal, every present symbol keeping at least 1.
std::vector<uint32_t> normalize(const std::vector<uint64_t>& counts) {
  const size_t n = counts.size();
  std::vector<uint32_t> freq(n, 0);
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  if (total == 0) {  // an unused context: any valid table
    freq[0] = kTotal - 1;
    freq[1] = 1;
    return freq;
  }
  uint32_t assigned = 0;
  size_t largest = 0;
  for (size_t s = 0; s < n; ++s) {
    if (counts[s] == 0) continue;
    freq[s] = std::max<uint32_t>(1, static_cast<uint32_t>(counts[s] * kTotal / total));
    assigned += freq[s];
    if (counts[s] > counts[largest]) largest = s;
  }
  // Settle the rounding on the symbols that can best afford it.
  while (assigned > kTotal) {
    size_t pick = n;
    for (size_t s = 0; s < n; ++s) {
      if (freq[s] > 1 && (pick == n || freq[s] > freq[pick])) pick = s;
    }
    --freq[pick];
    --assigned;
  }
  freq[largest] += kTotal - assigned;
  // No symbol is certain: each costs some bits, which bounds what a stream of
  // a given size can decode to (a reader checks that before allocating).
  if (freq[largest] == kTotal) {
    freq[largest] = kTotal - 1;
    freq[(largest + 1) % n] = 1;
  }
  return freq;
}

void put_u16(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v & 0xff));
  out.push_back(static_cast<uint8_t>(v >> 8));
}

}  // namespace

void encode(const uint8_t* symbols, int64_t rows, int64_t cols, int alphabet_bits, int order,
            std::vector<uint8_t>& out) {
  RK_CHECK_ARG(alphabet_bits >= 1 && alphabet_bits <= 8 && (order == 0 || order == 1),
               "rans: alphabet_bits in 1..8 and order 0 or 1");
  const int alphabet = 1 << alphabet_bits, contexts = contexts_of(alphabet_bits, order);
  const int64_t n = rows * cols;
  std::vector<std::vector<uint64_t>> counts(contexts, std::vector<uint64_t>(alphabet, 0));
  for (int64_t i = 0; i < n; ++i) ++counts[context_at(symbols, i, cols, order)][symbols[i]];
  std::vector<std::vector<uint32_t>> freq(contexts), start(contexts);
  for (int c = 0; c < contexts; ++c) {
    freq[c] = normalize(counts[c]);
    start[c].assign(alphabet, 0);
    for (int s = 1; s < alphabet; ++s) start[c][s] = start[c][s - 1] + freq[c][s - 1];
    for (int s = 0; s < alphabet; ++s) put_u16(out, freq[c][s]);
  }
  // rANS encodes backwards; the bytes come out reversed.
  std::vector<uint8_t> payload;
  payload.reserve(static_cast<size_t>(n / 2 + 16));
  uint32_t x = kLow;
  for (int64_t i = n - 1; i >= 0; --i) {
    const int c = context_at(symbols, i, cols, order);
    const uint32_t f = freq[c][symbols[i]];
    const uint32_t x_max = ((kLow >> kProbBits) << 8) * f;
    while (x >= x_max) {
      payload.push_back(static_cast<uint8_t>(x & 0xff));
      x >>= 8;
    }
    x = ((x / f) << kProbBits) + (x % f) + start[c][symbols[i]];
  }
  for (int k = 0; k < 4; ++k) {
    payload.push_back(static_cast<uint8_t>(x & 0xff));
    x >>= 8;
  }
  std::reverse(payload.begin(), payload.end());  // the final state first, big-endian
  out.insert(out.end(), payload.begin(), payload.end());
}

void decode(const uint8_t* data, size_t size, int64_t rows, int64_t cols, int alphabet_bits, int order,
            uint8_t* symbols) {
  RK_CHECK_ARG(alphabet_bits >= 1 && alphabet_bits <= 8 && (order == 0 || order == 1),
               "rans: alphabet_bits in 1..8 and order 0 or 1");
  const int alphabet = 1 << alphabet_bits, contexts = contexts_of(alphabet_bits, order);
  const size_t table_bytes = static_cast<size_t>(contexts) * alphabet * 2;
  RK_CHECK_FORMAT(size >= table_bytes + 4, "kv stream: an entropy-coded section is truncated (", size,
                  " bytes, its tables alone take ", table_bytes, ")");
  std::vector<uint32_t> freq(static_cast<size_t>(contexts) * alphabet), start(freq.size());
  std::vector<uint8_t> slot_symbol(static_cast<size_t>(contexts) * kTotal);
  for (int c = 0; c < contexts; ++c) {
    uint32_t sum = 0;
    for (int s = 0; s < alphabet; ++s) {
      const size_t at = (static_cast<size_t>(c) * alphabet + s) * 2;
      const uint32_t f = data[at] | (static_cast<uint32_t>(data[at + 1]) << 8);
      RK_CHECK_FORMAT(f < kTotal, "kv stream: a frequency table entry is ", f, " (at most ", kTotal - 1, ")");
      freq[c * alphabet + s] = f;
      start[c * alphabet + s] = sum;
      std::fill(slot_symbol.begin() + c * kTotal + sum, slot_symbol.begin() + c * kTotal + std::min(kTotal, sum + f),
                static_cast<uint8_t>(s));
      sum += f;
      RK_CHECK_FORMAT(sum <= kTotal, "kv stream: a frequency table sums past ", kTotal);
    }
    RK_CHECK_FORMAT(sum == kTotal, "kv stream: a frequency table sums to ", sum, ", not ", kTotal);
  }
  const uint8_t* p = data + table_bytes;
  const uint8_t* end = data + size;
  uint32_t x = 0;
  for (int k = 0; k < 4; ++k) x = (x << 8) | *p++;
  RK_CHECK_FORMAT(x >= kLow, "kv stream: an entropy-coded section is corrupt (bad initial state)");
  const int64_t n = rows * cols;
  for (int64_t i = 0; i < n; ++i) {
    const int c = context_at(symbols, i, cols, order);
    const uint32_t slot = x & (kTotal - 1);
    const uint8_t s = slot_symbol[static_cast<size_t>(c) * kTotal + slot];
    symbols[i] = s;
    x = freq[c * alphabet + s] * (x >> kProbBits) + slot - start[c * alphabet + s];
    while (x < kLow) {
      RK_CHECK_FORMAT(p < end, "kv stream: an entropy-coded section is truncated");
      x = (x << 8) | *p++;
    }
  }
  RK_CHECK_FORMAT(x == kLow && p == end, "kv stream: an entropy-coded section is corrupt (",
                  x == kLow ? "bytes left over" : "final state mismatch", ")");
}

}  // namespace ragkernels::kv::rans
