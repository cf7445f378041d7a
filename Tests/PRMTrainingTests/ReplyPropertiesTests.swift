import Foundation
import XCTest
@testable import PRMTraining

/// The probe targets on concrete replies: what each property says yes to, and the near misses
/// it must say no to.
final class ReplyPropertiesTests: XCTestCase {
    func testWordCountSplitsOnAnyWhitespace() {
        let p = ReplyProperties("Boil it\tfor  nine\nminutes. ")
        XCTAssertEqual(p.wordCount, 5)
        XCTAssertEqual(p[.logWordCount], log(5), accuracy: 1e-12)
        XCTAssertEqual(ReplyProperties("Sure.")[.logWordCount], 0)
        XCTAssertEqual(ReplyProperties("   ")[.logWordCount], 0, "no words counts as one for the logarithm")
    }

    func testQuestion() {
        XCTAssertTrue(ReplyProperties("Do you want me to describe them?").hasQuestion)
        XCTAssertTrue(ReplyProperties("Which one? The red.").hasQuestion)
        XCTAssertFalse(ReplyProperties("I wonder whether it works.").hasQuestion)
        XCTAssertEqual(ReplyProperties("Why?")[.question], 1)
        XCTAssertEqual(ReplyProperties("Because.")[.question], 0)
    }

    func testRefusal() {
        for text in ["I'm sorry, but I can't help with that.", "i cannot do that", "As an AI, I have no opinions.",
                     "Sorry. I won't describe it.", "I’m sorry to hear that.", "I CAN'T say.", "Well, I am unable to answer."] {
            XCTAssertTrue(ReplyProperties(text).refuses, text)
        }
        for text in ["Here is how to bake bread.", "The Wii can't play DVDs.", "You cannot miss it.", "Ask an AI expert."] {
            XCTAssertFalse(ReplyProperties(text).refuses, text)
        }
    }

    /// stylepref's negation words, whole words only.
    func testNegation() {
        for text in ["No, thanks.", "That is not right.", "You can't.", "I don’t know", "Never again", "Unfortunately it rained.", "Say 'no'."] {
            XCTAssertTrue(ReplyProperties(text).negates, text)
        }
        for text in ["Nothing to add.", "Take a note.", "Knowing is half.", "Cannon fire", "Yes, always."] {
            XCTAssertFalse(ReplyProperties(text).negates, text)
        }
    }

    func testFirstPerson() {
        for text in ["I think so.", "Let me check.", "In my view, yes.", "I'm here.", "i've seen it"] {
            XCTAssertTrue(ReplyProperties(text).firstPerson, text)
        }
        for text in ["It is raining.", "Imagine a mime in Miami.", "You and your family.", "Tim is mine."] {
            XCTAssertFalse(ReplyProperties(text).firstPerson, text)
        }
    }

    func testList() {
        for text in ["Options:\n- walk\n- run", "* one\n* two", "Steps:\n1. Mix\n2. Bake", "  • indented bullet", "12. twelfth step"] {
            XCTAssertTrue(ReplyProperties(text).hasList, text)
        }
        for text in ["It was -5 degrees.", "-5 degrees today", "1.5 cups of flour", "A - B is a range", "*emphasis*", "2.\n"] {
            XCTAssertFalse(ReplyProperties(text).hasList, text)
        }
    }

    func testKindsAndNames() {
        XCTAssertEqual(ReplyProperties.Property.allCases.filter { $0.kind == .continuous }, [.logWordCount])
        XCTAssertEqual(Set(ReplyProperties.Property.allCases.map(\.rawValue)).count, 6)
    }
}
