// GoogleTest for csrc/text/stem_english: word -> stem pairs for every step and
// exception of the Snowball English stemmer. Each expected stem is what
// PyStemmer 3.1.0 (`Stemmer.Stemmer("english").stemWord`) gives for the word.
#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "text/stem_english.h"

namespace {

struct StemCase {
  const char* word;
  const char* stem;
};

void expect_stems(std::initializer_list<StemCase> cases) {
  for (const StemCase& c : cases) {
    std::string word = c.word;
    ragkernels::text::stem_english(word);
    EXPECT_EQ(word, c.stem) << "stemming \"" << c.word << "\"";
  }
}

TEST(StemEnglish, LeavesWordsOfFewerThanThreeLettersAlone) {
  // Letters, not bytes: "éé" is four bytes but two letters.
  expect_stems({{"", ""}, {"a", "a"}, {"y", "y"}, {"é", "é"}, {"is", "is"}, {"as", "as"},
                {"ys", "ys"}, {"'s", "'s"}, {"yé", "yé"}, {"éé", "éé"}, {"中文", "中文"}});
}

TEST(StemEnglish, ExceptionalWords) {
  expect_stems({{"skis", "ski"},   {"skies", "sky"},    {"idly", "idl"},   {"gently", "gentl"},
                {"ugly", "ugli"},  {"early", "earli"},  {"only", "onli"},  {"singly", "singl"},
                {"sky", "sky"},    {"news", "news"},    {"howe", "howe"},  {"atlas", "atlas"},
                {"cosmos", "cosmos"}, {"bias", "bias"}, {"andes", "andes"},
                // Only the whole word is exceptional.
                {"skied", "ski"},  {"newsy", "newsi"}});
}

TEST(StemEnglish, WordsInvariantAfterStep1a) {
  expect_stems({{"inning", "inning"},   {"innings", "inning"},   {"outing", "outing"},
                {"outings", "outing"},  {"canning", "canning"},  {"cannings", "canning"},
                {"herring", "herring"}, {"herrings", "herring"}, {"earring", "earring"},
                {"earrings", "earring"}, {"evening", "evening"}, {"evenings", "evening"},
                {"proceed", "proceed"}, {"proceeds", "proceed"}, {"exceed", "exceed"},
                {"exceeds", "exceed"},  {"succeed", "succeed"},  {"succeeds", "succeed"},
                {"exceedingly", "exceed"}});
}

TEST(StemEnglish, LeadingApostropheAndConsonantY) {
  expect_stems({{"'quoted", "quot"}, {"''ab", "'ab"},  {"youth", "youth"}, {"boy", "boy"},
                {"boyish", "boyish"}, {"sayings", "say"}, {"yyy", "yyy"},   {"ayy", "ayi"},
                {"crying", "cri"},  {"yying", "yie"}});
}

TEST(StemEnglish, PrefixesThatFixR1) {
  expect_stems({{"generate", "generat"},   {"generous", "generous"},     {"communism", "communism"},
                {"community", "communiti"}, {"arsenic", "arsenic"},      {"arsenal", "arsenal"},
                {"past", "past"},           {"paste", "paste"},          {"pasted", "paste"},
                {"pasting", "paste"},       {"universe", "univers"},     {"universal", "universal"},
                {"university", "universiti"}, {"later", "later"},        {"lateral", "lateral"},
                {"emerge", "emerg"},        {"emergency", "emergenc"},   {"organ", "organ"},
                {"organic", "organic"},     {"organize", "organiz"},     {"intern", "intern"},
                {"internal", "internal"},   {"international", "internat"}, {"interval", "interval"}});
}

TEST(StemEnglish, Step1aPossessivesAndPlurals) {
  expect_stems({{"dog's", "dog"}, {"dogs'", "dog"}, {"dog's'", "dog"}, {"caresses", "caress"},
                {"ties", "tie"},  {"tied", "tie"},  {"cries", "cri"},  {"cried", "cri"},
                {"gas", "gas"},   {"gaps", "gap"},  {"kiwis", "kiwi"}, {"bus", "bus"},
                {"kiss", "kiss"}, {"ss", "ss"}});
}

TEST(StemEnglish, Step1bEdAndIng) {
  expect_stems({{"agreed", "agre"},         {"agreedly", "agre"},       {"feed", "feed"},
                {"bleed", "bleed"},         {"luxuriated", "luxuri"},   {"luxuriating", "luxuri"},
                {"troubled", "troubl"},     {"sized", "size"},          {"hopped", "hop"},
                {"hopping", "hop"},         {"fitted", "fit"},          {"fizzed", "fizz"},
                {"added", "add"},           {"egged", "egg"},           {"offing", "off"},
                {"filing", "file"},         {"hoped", "hope"},          {"dying", "die"},
                {"lying", "lie"},           {"tying", "tie"},           {"vying", "vie"},
                {"eying", "eye"},           {"ginning", "gin"},         {"ed", "ed"},
                {"bed", "bed"},             {"bedding", "bed"},         {"sing", "sing"},
                {"singing", "sing"},        {"sled", "sled"},           {"falling", "fall"},
                {"knowingly", "know"}});
}

TEST(StemEnglish, Step1cYToI) {
  expect_stems({{"cry", "cri"}, {"by", "by"}, {"say", "say"}, {"toy", "toy"}, {"happy", "happi"},
                {"flying", "fli"}, {"happily", "happili"}});
}

TEST(StemEnglish, Step2) {
  expect_stems({{"relational", "relat"},     {"conditional", "condit"},   {"valenci", "valenc"},
                {"hesitanci", "hesit"},      {"digitizer", "digit"},      {"conformabli", "conform"},
                {"radicalli", "radic"},      {"differentli", "differ"},   {"vileli", "vile"},
                {"analogousli", "analog"},   {"vietnamization", "vietnam"}, {"predication", "predic"},
                {"operator", "oper"},        {"feudalism", "feudal"},     {"decisiveness", "decis"},
                {"hopefulness", "hope"},     {"callousness", "callous"},  {"formaliti", "formal"},
                {"sensitiviti", "sensit"},   {"sensibiliti", "sensibl"},  {"archaeology", "archaeolog"},
                {"geologist", "geolog"},     {"hopefulli", "hope"},       {"carelessli", "careless"},
                {"analogi", "analog"},       {"biologi", "biolog"},       {"tabli", "tabli"},
                {"deli", "deli"},            {"cleverly", "clever"},      {"heartly", "heart"}});
}

TEST(StemEnglish, Step3) {
  expect_stems({{"triplicate", "triplic"},  {"formative", "format"}, {"formalize", "formal"},
                {"electriciti", "electr"}, {"electrical", "electr"}, {"hopeful", "hope"},
                {"goodness", "good"},      {"sensational", "sensat"}, {"traditional", "tradit"}});
}

TEST(StemEnglish, Step4) {
  expect_stems({{"revival", "reviv"},       {"allowance", "allow"},     {"inference", "infer"},
                {"airliner", "airlin"},     {"gyroscopic", "gyroscop"}, {"adjustable", "adjust"},
                {"defensible", "defens"},   {"irritant", "irrit"},      {"replacement", "replac"},
                {"adjustment", "adjust"},   {"dependent", "depend"},    {"adoption", "adopt"},
                {"decision", "decis"},      {"communion", "communion"}, {"homologous", "homolog"},
                {"effective", "effect"},    {"bowdlerize", "bowdler"},  {"angularity", "angular"},
                {"activate", "activ"},      {"commit", "commit"},       {"realism", "realism"}});
}

TEST(StemEnglish, Step5) {
  expect_stems({{"probate", "probat"}, {"rate", "rate"}, {"cease", "ceas"}, {"controll", "control"},
                {"roll", "roll"}, {"fizzle", "fizzl"}, {"hopefulle", "hopefull"}});
}

TEST(StemEnglish, Apostrophes) {
  expect_stems({{"'", "'"},           {"''", "''"},         {"'''", "'"},     {"o'clock", "o'clock"},
                {"rock'n'roll", "rock'n'rol"}, {"isn't", "isn't"}, {"'tis", "tis"}, {"ma'am's", "ma'am"}});
}

TEST(StemEnglish, NonAsciiLettersAreWholeNonVowels) {
  expect_stems({{"naïve", "naïv"},   {"café", "café"},       {"cafés", "café"},     {"résumé", "résumé"},
                {"résumés", "résumé"}, {"über", "über"},   {"straße", "straße"},  {"niños", "niño"},
                {"señoras", "señora"}, {"zoë", "zoë"},     {"açaí", "açaí"},      {"中文ing", "中文ing"},
                {"😀ed", "😀ed"},    {"dé😀ing", "dé😀ing"}});
}

TEST(StemEnglish, CountsMultiByteLettersOnce) {
  // One letter before -ies, however many bytes it takes.
  expect_stems({{"éies", "éie"}, {"xéies", "xéi"}, {"ééies", "ééi"}, {"中ies", "中ie"}});
  // y after a multi-byte first letter stays; after a second letter it becomes i.
  expect_stems({{"'éy", "éy"}, {"ééy", "ééi"}, {"éying", "éie"}, {"xéing", "xéing"}});
  // R1 starts after the whole letter, so these end in a short syllable.
  expect_stems({{"aéed", "aée"}, {"añing", "añe"}, {"ñañed", "ñañe"}, {"a😀ing", "a😀e"},
                {"中aés", "中aé"}, {"中as", "中as"}});
}

TEST(StemEnglish, DigitsAndUnderscoresAreNonVowels) {
  expect_stems({{"2nd", "2nd"}, {"1990s", "1990s"}, {"covid19", "covid19"}, {"mp3s", "mp3s"}, {"h2o", "h2o"},
                {"x_ing", "x_ing"}, {"under_score", "under_scor"}, {"snake_cased", "snake_cas"}});
}

TEST(StemEnglish, WorksInPlaceWithoutReallocating) {
  for (const char* text : {"generalizations", "skies", "dying", "hopping", "résumés", "a"}) {
    std::string word = text;
    const char* before = word.data();
    const size_t capacity = word.capacity();
    ragkernels::text::stem_english(word);
    EXPECT_EQ(word.data(), before) << text;
    EXPECT_EQ(word.capacity(), capacity) << text;
  }
}

}  // namespace
